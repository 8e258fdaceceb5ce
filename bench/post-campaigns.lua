-- wrk: POST a decision request body (bench/fcgi.sh)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"visitor_id":"bench-visitor-42","context":{"isVIP":true,"age":30,"country":"fr",' ..
           '"app_version":"2.3.1","platform":"ios"},"trigger_hit":false}'

// Validates an OpenAPI document with @apidevtools/swagger-parser (the OpenAPI 3.1
// meta-schema, then every $ref resolved). Usage: node validate.cjs FILE
// Prints the number of paths and operations, or the errors (exit 1).
const SwaggerParser = require("@apidevtools/swagger-parser");

SwaggerParser.validate(process.argv[2])
  .then((api) => {
    const methods = ["get", "head", "post", "put", "patch", "delete", "options"];
    let ops = 0;
    for (const item of Object.values(api.paths)) ops += methods.filter((m) => item[m]).length;
    console.log(JSON.stringify({ openapi: api.openapi, paths: Object.keys(api.paths).length, operations: ops }));
  })
  .catch((err) => {
    console.error(String(err.stack || err));
    process.exit(1);
  });

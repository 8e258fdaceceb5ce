/*
 * decision-fcgi eval: decide from the command line, for scripting, support
 * and tests. One /v2/campaigns request body per line on stdin, the response
 * body on stdout, one JSON object per line.
 */
#ifndef DC_EVAL_H
#define DC_EVAL_H

int dc_eval_main(int argc, const char *const *argv);
void dc_eval_usage(const char *prog);

#endif

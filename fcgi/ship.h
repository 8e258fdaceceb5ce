/*
 * decision-fcgi ship: deliver what an event spool holds, by hand (operators,
 * tests) or as a standalone shipper process.
 */
#ifndef DC_SHIP_H
#define DC_SHIP_H

int dc_ship_main(int argc, const char *const *argv);
void dc_ship_usage(const char *prog);

#endif

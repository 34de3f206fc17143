/* explain.h - `pgwarden --explain`: how pgwarden classifies a statement, and why, for operators. */
#ifndef PGW_EXPLAIN_H
#define PGW_EXPLAIN_H

/*
 * pgwarden --explain -c FILE --target NAME [--actor ID] "SQL": connect to the
 * target (its conninfo), read its function catalog, classify the SQL and
 * print, per statement, its facts, the verdict for that target now, and for
 * each user function it calls what the function does. Returns the exit
 * status: 0 allowed, 3 denied, 1 error, 2 usage.
 */
int explain_main(int argc, char **argv);

#endif

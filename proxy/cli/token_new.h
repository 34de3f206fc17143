/* token_new.h - `pgwarden token new`: a random actor token and its token-file line (CONTRACT §1, §3). */
#ifndef PGW_TOKEN_NEW_H
#define PGW_TOKEN_NEW_H

#include <stdio.h>

/*
 * argv[0] is "token", argv[1] "new", then
 *   --actor ID --role ROLE [--tenant T] [--scram]   (also --actor=ID form).
 * Prints the token on line 1 of stdout and its token-file record on line 2.
 * Returns the process exit status: 0 done, 1 internal failure (no randomness,
 * out of memory), 2 usage error (message and usage on stderr).
 */
int token_cli_main(int argc, char **argv);

/*
 * The same, writing to the given streams (for tests). Token format:
 * "pgw_" followed by the 32 random bytes in base64url without padding
 * (43 characters), so it is printable, shell- and URL-safe, and pure ASCII
 * (SASLprep leaves it unchanged).
 */
int token_cli_run(int argc, char **argv, FILE *out, FILE *err);

#endif

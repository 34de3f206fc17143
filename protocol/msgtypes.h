/*
 * msgtypes.h - the one table of protocol 3.0 message types
 * (PostgreSQL docs, "Message Formats"). Everything that needs a message's
 * name or its direction is generated from this X-macro, so nothing drifts.
 *
 * X(byte, direction, name)   direction: F frontend->backend, B backend->frontend, FB both.
 */
#ifndef PGW_MSGTYPES_H
#define PGW_MSGTYPES_H

#define PGW_MESSAGE_TYPES(X)                \
	X('Q', F, Query)                    \
	X('P', F, Parse)                    \
	X('B', F, Bind)                     \
	X('E', F, Execute)                  \
	X('D', F, Describe)                 \
	X('C', F, Close)                    \
	X('S', F, Sync)                     \
	X('H', F, Flush)                    \
	X('F', F, FunctionCall)             \
	X('X', F, Terminate)                \
	X('p', F, PasswordMessage)          \
	X('d', FB, CopyData)                \
	X('c', FB, CopyDone)                \
	X('f', F, CopyFail)                 \
	X('R', B, Authentication)           \
	X('K', B, BackendKeyData)           \
	X('2', B, BindComplete)             \
	X('3', B, CloseComplete)            \
	X('G', B, CopyInResponse)           \
	X('H', B, CopyOutResponse)          \
	X('W', B, CopyBothResponse)         \
	X('T', B, RowDescription)           \
	X('D', B, DataRow)                  \
	X('I', B, EmptyQueryResponse)       \
	X('E', B, ErrorResponse)            \
	X('V', B, FunctionCallResponse)     \
	X('v', B, NegotiateProtocolVersion) \
	X('n', B, NoData)                   \
	X('N', B, NoticeResponse)           \
	X('A', B, NotificationResponse)     \
	X('t', B, ParameterDescription)     \
	X('S', B, ParameterStatus)          \
	X('1', B, ParseComplete)            \
	X('s', B, PortalSuspended)          \
	X('Z', B, ReadyForQuery)            \
	X('C', B, CommandComplete)

/* Untyped startup-phase packets: the 4-byte code after the length. */
#define PGW_PROTOCOL_V3 196608u           /* 3.0 */
#define PGW_CANCEL_REQUEST_CODE 80877102u /* 1234.5678 */
#define PGW_SSL_REQUEST_CODE 80877103u    /* 1234.5679 */
#define PGW_GSSENC_REQUEST_CODE 80877104u /* 1234.5680 */

/* Name of a frontend message type byte, "unknown" if none. */
const char *frontend_message_name(char type);
/* Name of a backend message type byte, "unknown" if none. */
const char *backend_message_name(char type);

#endif

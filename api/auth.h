/* auth.h — the Bearer token check (docs/mocod-api.md): "Authorization: Bearer <token>". */
#ifndef MOCOD_API_AUTH_H
#define MOCOD_API_AUTH_H

/* 1 when the Authorization header carries exactly token, else 0. The comparison takes the same
 * time wherever the first differing byte is, so response times do not reveal the token. */
int auth_bearer_ok(const char *authorization, const char *token);

#endif

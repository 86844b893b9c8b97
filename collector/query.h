/*
 * query: the query role of a scaled-out collector (query.peers). The Zipkin
 * read API (/api/v2/services, spans, remoteServices, autocompleteKeys,
 * autocompleteValues, traces, trace/{id}, traceMany, dependencies) is
 * answered by asking every store member the same path and query string
 * and merging their answers (query_merge.h) into what one collector
 * holding every trace would answer.
 *
 * Design. The handler runs on the libmicrohttpd pool thread that took the
 * request and blocks there while libcurl's multi interface asks all
 * members at once; each thread keeps one multi handle (and so its
 * keep-alive connections to the members) in thread-specific data, freed
 * when the thread ends. A member that does not answer whole within
 * query.timeout, refuses, answers an unexpected status, more than
 * query.maxResponseBytes or something that does not parse is left out: the
 * answer is still 200 with the others' data and an X-Outrider-Partial
 * header naming who is missing and why; with no member left it is 503.
 * A member's 400 (a bad parameter, which every member judges the same) is
 * passed through as it is, as is the 404 of trace/{id} when no member has
 * the trace.
 */
#ifndef OUTRIDER_COLLECTOR_QUERY_H
#define OUTRIDER_COLLECTOR_QUERY_H

#include "buf.h"
#include "config.h"
#include "server.h"

typedef struct query query_t;

/*
 * Initialise libcurl (once per process: call from the main thread before
 * the listeners start) and the member list from cfg's query.* settings.
 * Returns NULL (logged) when query.peers has a bad entry. Free with
 * query_destroy once the listeners have stopped.
 */
query_t *query_create(const collector_config_t *cfg);

/* Free q and clean libcurl up; NULL is a no-op. */
void query_destroy(query_t *q);

/*
 * Answer an API path (relative to the API root, as zipkin_api_handle takes
 * it) by fanning out. Returns 1 when it answered, 0 when the path is not
 * one of the fanned-out API paths.
 */
int query_handle(query_t *q, const http_request_t *req, const char *path, http_response_t *resp);

/*
 * Append the query role's series: outrider_query_peers (gauge),
 * outrider_query_peer_requests_total{peer,result} and
 * outrider_query_partial_answers_total. NULL q writes nothing.
 */
void query_render_metrics(query_t *q, buf_t *b, int openmetrics);

#endif

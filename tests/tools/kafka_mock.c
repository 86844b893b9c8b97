/*
 * kafka_mock: librdkafka's mock cluster (rdkafka_mock.h: the real Kafka
 * protocol over TCP on loopback) as a process the tests start.
 *
 * usage: kafka_mock [--brokers N] [--topic NAME:PARTITIONS]...
 * Prints "bootstrap HOST:PORT,..." on stdout once the cluster listens,
 * then reads commands, one per line, from stdin and answers "ok" or
 * "error ...":
 *   down ID   set broker ID (1..N) down: its connections close, it accepts none
 *   up ID     bring it back
 *   quit      (or end of input, or SIGTERM) stop
 * Topics not created up front are created on first use (4 partitions).
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int brokers = 3;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];
    /* the mock cluster lives inside a client instance; this one never produces */
    if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
            brokers = atoi(argv[++i]);
    if (brokers < 1 || brokers > 16) {
        fprintf(stderr, "kafka_mock: --brokers must be 1..16\n");
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        return 2;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (mc == NULL) {
        fprintf(stderr, "kafka_mock: cannot create the mock cluster\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--topic") != 0 || i + 1 >= argc)
            continue;
        char name[256];
        int parts = 4;
        snprintf(name, sizeof(name), "%s", argv[++i]);
        char *colon = strchr(name, ':');
        if (colon != NULL) {
            *colon = '\0';
            parts = atoi(colon + 1);
        }
        int repl = brokers < 3 ? brokers : 3;
        if (rd_kafka_mock_topic_create(mc, name, parts, repl) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "kafka_mock: cannot create topic %s\n", name);
            return 1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        int id;
        rd_kafka_resp_err_t e;
        if (sscanf(line, "down %d", &id) == 1)
            e = rd_kafka_mock_broker_set_down(mc, id);
        else if (sscanf(line, "up %d", &id) == 1)
            e = rd_kafka_mock_broker_set_up(mc, id);
        else if (strncmp(line, "quit", 4) == 0)
            break;
        else {
            printf("error unknown command\n");
            fflush(stdout);
            continue;
        }
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            printf("ok\n");
        else
            printf("error %s\n", rd_kafka_err2str(e));
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}

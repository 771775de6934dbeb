/* unit_tests.c - runs every suite; CK_RUN_SUITE=name runs one (ctest registers one test per suite). */
#include <stdlib.h>

#include "unit.h"

int main(void) {
    scratch_root_create();
    SRunner *runner = srunner_create(backoff_suite());
    srunner_add_suite(runner, autoscale_suite());
    srunner_add_suite(runner, child_suite());
    srunner_add_suite(runner, config_suite());
    srunner_add_suite(runner, control_suite());
    srunner_add_suite(runner, environment_suite());
    srunner_add_suite(runner, launch_suite());
    srunner_add_suite(runner, handshake_suite());
    srunner_add_suite(runner, line_buffer_suite());
    srunner_add_suite(runner, listener_suite());
    srunner_add_suite(runner, log_suite());
    srunner_add_suite(runner, log_sink_suite());
    srunner_add_suite(runner, metrics_suite());
    srunner_add_suite(runner, metrics_request_suite());
    srunner_add_suite(runner, notify_suite());
    srunner_add_suite(runner, pool_suite());
    srunner_add_suite(runner, stall_suite());
    srunner_add_suite(runner, status_suite());
    srunner_add_suite(runner, worker_channel_suite());
    srunner_add_suite(runner, worker_state_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    scratch_root_remove();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

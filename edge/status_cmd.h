/* status_cmd: `dicom-edge status [--config FILE] [--json]`: asks the running edge (GET /status
 * on its http_listen address, proxy_status.h) and prints its state for an operator, or the JSON
 * document as it came with --json. */
#ifndef GW_STATUS_CMD_H
#define GW_STATUS_CMD_H

/* argv[0] is "status"; the options follow. Returns the exit status: 0 printed; 1 the edge could
 * not be asked (not running, http_listen off, configuration invalid) or answered nonsense; 2 a
 * usage error. Messages go to stderr. */
int status_cmd_main(int argc, char **argv);

#endif

#!/usr/bin/env bash
# Prints the dashboard configuration fleet.sh uses: data in WORK/dash-data,
# the broker on MQTT_PORT, the pages on HTTP_PORT.
#   tests/load/fleet-dashboard.sh WORK MQTT_PORT HTTP_PORT
set -euo pipefail
printf 'data_dir = "%s/dash-data"\n[mqtt]\nurl = "mqtt://127.0.0.1:%s"\n[http]\nlisten = "127.0.0.1:%s"\n' "$1" "$2" "$3"

"""What `marketboss broker serve` shows on its command line, as plain constants so that `--help` needs no
settings model: the well-known default keys, the variables that override them, and each fault's flag."""

DEFAULT_KEY_ID = "mb-local-key"
DEFAULT_SECRET_KEY = "mb-local-secret"
KEY_ID_ENV = "MARKETBOSS_BROKER_KEY_ID"
SECRET_KEY_ENV = "MARKETBOSS_BROKER_SECRET_KEY"

#: The flag of each FaultConfig field (shared by the CLI and process.py).
FAULT_FLAGS: dict[str, str] = {
    "error_500_rate": "--fault-500-rate",
    "error_503_rate": "--fault-503-rate",
    "error_504_rate": "--fault-504-rate",
    "drop_rate": "--fault-drop-rate",
    "latency_ms": "--fault-latency-ms",
    "latency_jitter_ms": "--fault-jitter-ms",
    "burst_429_rate": "--fault-429-burst-rate",
    "burst_429_length": "--fault-429-burst-len",
    "reject_rate": "--fault-reject-rate",
    "fail_after_commit_rate": "--fault-late-fail-rate",
    "fail_after_commit_status": "--fault-late-status",
    "drop_after_commit_rate": "--fault-late-drop-rate",
    "paths": "--fault-paths",
    "methods": "--fault-methods",
    "seed": "--fault-seed",
}

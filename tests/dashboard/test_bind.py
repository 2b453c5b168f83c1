"""`streamlit run dashboard/app.py` from the repository root, as the README says, listens on loopback only."""

from __future__ import annotations

from pathlib import Path

from tests.dashboard.streamlit_process import streamlit

ROOT = Path(__file__).resolve().parents[2]


def _listening(port: int) -> set[str]:
    """Local addresses in LISTEN state on `port`, from the kernel's own tables."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            addr, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(addr)
    return found


def test_the_dashboard_binds_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    with streamlit(ROOT, tmp_path / "streamlit.log") as (_, port):  # no --server.address: the repo's config
        assert _listening(port) == {"0100007F"}  # 127.0.0.1 only: not 0.0.0.0, not ::

"""ConnectionBlackhole's parameters: refused before anything is touched, naming what was wrong."""

from __future__ import annotations

import pytest

from lab.errors import FaultError
from lab.faults.connection import ConnectionBlackhole
from lab.faults.ledger import FaultLedger

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("kwargs, named", [
    ({"remote_port": 0}, "remote_port"), ({"remote_port": 70000}, "remote_port"),
    ({"remote_port": "9092"}, "remote_port"), ({"remote_port": 9092, "which": -1}, "which"),
])
def test_bad_parameters_are_refused_naming_them(tmp_path, kwargs, named) -> None:
    ledger = FaultLedger(tmp_path / "ledger")
    with pytest.raises(FaultError, match=named):
        ConnectionBlackhole(ledger, **kwargs)
    assert ledger.unhealed() == []


def test_the_heal_data_is_known_before_injection(tmp_path) -> None:
    """The nftables table is named up front, so `lab heal` in another process can remove it."""
    fault = ConnectionBlackhole(FaultLedger(tmp_path / "ledger"), 9092)
    assert fault.heal_data() == {"table": fault.table}
    assert fault.table.startswith("chaoslab_conn_")

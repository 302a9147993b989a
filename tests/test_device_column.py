"""The device a model's features were computed on is shown beside its runtime: in the CLI and in Compare."""

from __future__ import annotations

from pathlib import Path

from results import model_result
from streamlit.testing.v1 import AppTest

from core.console import results_table

TESTS = Path(__file__).resolve().parent


def test_the_cli_results_table_shows_the_device_beside_the_runtime():
    table = results_table([model_result(device="GPU", runtime="tf"), model_result(model="MobileNet:0.25@96")])
    columns = list(table.columns)
    assert columns[columns.index("runtime") + 1] == "device"
    assert table.set_index("model")["device"].to_dict() == {"MobileNet:0.25@128": "GPU", "MobileNet:0.25@96": "CPU"}
    assert "GPU" in table.to_string(index=False)


def compare_table(tests: str) -> None:
    import sys

    sys.path.insert(0, tests)
    from results import model_result

    from ui.runs import results_table

    results_table([model_result(device="GPU", runtime="tf"), model_result(model="MobileNet:0.25@96")])


def test_the_compare_table_shows_the_device_beside_the_runtime():
    at = AppTest.from_function(compare_table, args=(str(TESTS),), default_timeout=60).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    columns = list(table.columns)
    assert columns[columns.index("runtime") + 1] == "device"
    assert table.set_index("model")["device"].to_dict() == {"MobileNet:0.25@128": "GPU", "MobileNet:0.25@96": "CPU"}

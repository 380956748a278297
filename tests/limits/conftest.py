# The gateway suite's fixtures: a real upstream and real `wardgate run` processes.
from tests.gateway.conftest import upstream  # noqa: F401

# The gateway suite's fixtures: a real upstream and real `wardgate run` processes.
from tests.gateway.conftest import gateway_factory, upstream  # noqa: F401

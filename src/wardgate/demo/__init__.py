"""`wardgate demo`: the issuer, the gateway and two example services on 127.0.0.1, one command.

Modules: settings (ports, state directory, configs rendered from examples/), bootstrap (keys
and demo users through wardgate.issuer.admin), stack (child processes: start, readiness, stop),
services (the two example FastAPI services, using wardgate.service), guide (what to try),
commands (the CLI).
"""

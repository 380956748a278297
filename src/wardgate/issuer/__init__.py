"""The token issuer: login, RFC 9068 access tokens, rotating refresh tokens, OIDC SSO.

Public entry points for other parts of wardgate (the demo):
`wardgate.issuer.app.create_app(cfg)`, `wardgate.issuer.server.serve(cfg)` and the stores in
`wardgate.issuer.db.Database`.
"""

"""The hosted login page: plain HTML, no script, every value escaped, CSRF field included."""

from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in</title>
<style>body{{font-family:sans-serif;max-width:22rem;margin:4rem auto}}
label,input,button{{display:block;width:100%;margin:.4rem 0}}
.error{{color:#a00}}</style></head>
<body><main><h1>Sign in</h1>
<p>to continue to <strong>{client}</strong></p>
{error}
<form method="post" action="{action}">
{hidden}
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></main></body></html>
"""


def _security_headers(redirect_uri: str | None) -> dict[str, str]:
    form_action = "'self'"
    if redirect_uri:
        # After the POST the browser follows a 303 to the client; CSP form-action covers it.
        p = urlsplit(redirect_uri)
        form_action += f" {p.scheme}://{p.netloc}"
    return {
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                   f"form-action {form_action}; frame-ancestors 'none'",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }


def render(*, client_name: str, action: str, fields: dict[str, str], redirect_uri: str,
           username: str = "", error: str | None = None, status: int = 200) -> HTMLResponse:
    hidden = "\n".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                       for k, v in fields.items())
    html = _PAGE.format(client=escape(client_name), action=escape(action), hidden=hidden,
                        username=escape(username),
                        error=f'<p class="error" role="alert">{escape(error)}</p>' if error else "")
    return HTMLResponse(html, status_code=status, headers=_security_headers(redirect_uri))


def error_page(message: str, status: int = 400) -> HTMLResponse:
    """Shown instead of redirecting when client_id or redirect_uri is bad (RFC 6749 §4.1.2.1)."""
    html = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title>"
            f"</head><body><h1>Sign-in request rejected</h1><p>{escape(message)}</p></body></html>")
    return HTMLResponse(html, status_code=status, headers=_security_headers(None))

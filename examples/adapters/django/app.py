"""A one-file Django project whose session code is Django's own
(`request.session`, `django.contrib.auth`'s `login()` and `logout()`, the
messages framework over the session), kept by sessionproxy through
adapters/python: two processes of it run behind the proxy
(`go run ./examples/adapters -app django`).

Usage: app.py --db /tmp/x.sqlite3 --setup          (migrate, add user ann)
       app.py --db /tmp/x.sqlite3 --listen 127.0.0.1:9001 --name django-1
"""
import argparse
import sys

import django
from django.conf import settings

NAME = "django"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Django behind sessionproxy: {{ name }}</title>
<link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 0; background: {{ color }}; color: #fff; }
main { max-width: 40em; margin: 3em auto; padding: 2em; background: rgba(0,0,0,.25);
       border-radius: 1em; }
.who { font-size: 4em; font-weight: bold; margin: 0; }
dt { opacity: .8; } dd { font-family: monospace; font-size: 1.3em; margin: 0 0 1em 0; }
.msg { background: rgba(255,255,255,.2); padding: .5em 1em; border-radius: .5em; }
</style></head>
<body><main>
<p>Django's <code>request.session</code>, answered by</p>
<p class="who">{{ name }}</p>
{% for m in messages %}<p class="msg">{{ m }}</p>{% endfor %}
<dl>
<dt>Session ID (<code>request.session.session_key</code>)</dt><dd>{{ sid }}</dd>
<dt>Visits in this session (<code>request.session["visits"]</code>)</dt><dd>{{ visits }}</dd>
<dt>Logged in as (<code>request.user</code>)</dt><dd>{{ user|default:"nobody" }}</dd>
</dl>
{% if user %}
<form method="post" action="/logout"><button>Log out</button>
(<code>logout()</code> ends the session)</form>
{% else %}
<form method="post" action="/login">
<input name="username" value="ann" size="8"> <input name="password" value="secret" size="8">
<button>Log in</button> (<code>login()</code>: a new session ID, the same visits)</form>
{% endif %}
<p>Reload: the proxy sends you to both Django processes in turn; each reads the
same session, which neither keeps.</p>
</main></body></html>
"""


def configure(db):
    settings.configure(
        DEBUG=False,
        SECRET_KEY="sessionproxy-example-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                        "django.contrib.messages"],
        MIDDLEWARE=[
            # In place of django.contrib.sessions.middleware.SessionMiddleware:
            "sessionproxy_adapters.django.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        # Messages in the session, so that they too cross processes.
        MESSAGE_STORAGE="django.contrib.messages.storage.session.SessionStorage",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db}},
        USE_TZ=True,
        # With DEBUG off, Django prints a failed request's traceback nowhere.
        LOGGING={"version": 1, "disable_existing_loggers": False,
                 "handlers": {"console": {"class": "logging.StreamHandler"}},
                 "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}}},
    )
    django.setup()


def index(request):
    from django.contrib import messages
    from django.http import HttpResponse, JsonResponse
    from django.template import Context, Engine
    request.session["visits"] = request.session.get("visits", 0) + 1
    page = dict(name=NAME, sid=request.session.session_key, visits=request.session["visits"],
                user=request.user.username if request.user.is_authenticated else "",
                messages=[str(m) for m in messages.get_messages(request)])
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse(page)
    color = "#1565c0" if NAME.endswith("1") else "#2e7d32"
    html = Engine().from_string(PAGE).render(Context(dict(page, color=color)))
    resp = HttpResponse(html)
    resp["Cache-Control"] = "no-store"
    return resp


def login_view(request):
    from django.contrib import messages
    from django.contrib.auth import authenticate, login
    from django.shortcuts import redirect
    user = authenticate(request, username=request.POST.get("username"),
                        password=request.POST.get("password"))
    if user is None:
        messages.error(request, "Wrong user name or password (try ann, secret).")
    else:
        login(request, user)
        messages.info(request, f"Logged in as {user.username} on {NAME}: "
                               "the session has a new ID.")
    return redirect("/", permanent=False)


def logout_view(request):
    from django.contrib import messages
    from django.contrib.auth import logout
    from django.shortcuts import redirect
    logout(request)
    messages.info(request, f"Logged out on {NAME}: that session is gone.")
    return redirect("/")


def urls():
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt
    from django.views.decorators.http import require_POST
    # csrf_exempt keeps the example short.
    return [
        path("", index),
        path("login", csrf_exempt(require_POST(login_view))),
        path("logout", csrf_exempt(require_POST(logout_view))),
    ]


def __getattr__(name):  # ROOT_URLCONF: urlpatterns, once Django is set up
    if name == "urlpatterns":
        return urls()
    raise AttributeError(name)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--setup", action="store_true")
    ap.add_argument("--listen", default="127.0.0.1:9001")
    ap.add_argument("--name", default="django")
    args = ap.parse_args()
    NAME = args.name
    configure(args.db)
    if args.setup:
        from django.contrib.auth.models import User
        from django.core.management import call_command
        call_command("migrate", verbosity=0)
        User.objects.create_user("ann", password="secret")
        sys.exit(0)
    from django.core.servers.basehttp import get_internal_wsgi_application, run
    host, port = args.listen.rsplit(":", 1)
    # runserver's own server (threaded), as `manage.py runserver` runs it.
    run(host, int(port), get_internal_wsgi_application(), threading=True)

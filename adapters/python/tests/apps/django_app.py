"""A one-file Django project that uses request.session, login() and
logout() of django.contrib.auth, unchanged, behind sessionproxy: the
end-to-end tests (../../adapters_test.go) run two of it over one sqlite
database.

Usage: django_app.py --db /tmp/x.sqlite3 --setup          (migrate, add user ann)
       django_app.py --db /tmp/x.sqlite3 --listen 127.0.0.1:9001 --name django-1
"""
import argparse
import sys

import django
from django.conf import settings

NAME = "django"


def configure(db):
    settings.configure(
        DEBUG=False,
        SECRET_KEY="sessionproxy-e2e-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        MIDDLEWARE=[
            # In place of django.contrib.sessions.middleware.SessionMiddleware:
            "sessionproxy_adapters.django.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db}},
        # A fast hasher: the tests log in often on a loaded machine.
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        USE_TZ=True,
        # What the proxy is started with (its default).
        SESSIONPROXY_MAX_SIZE=64 * 1024,
    )
    django.setup()


def state(request, **extra):
    from django.http import JsonResponse
    extra.update(backend=NAME, key=request.session.session_key, new=request.session.new,
                 user=request.user.username if request.user.is_authenticated else "")
    return JsonResponse(extra)


def visit(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return state(request, visits=request.session["visits"])


def whoami(request):
    return state(request)


def login_view(request):
    from django.contrib.auth import authenticate, login
    from django.http import HttpResponse
    user = authenticate(request, username=request.POST.get("username"),
                        password=request.POST.get("password"))
    if user is None:
        return HttpResponse("wrong password\n", status=403)
    login(request, user)
    return state(request)


def logout_view(request):
    from django.contrib.auth import logout
    logout(request)
    if request.GET.get("message"):
        # A write after the flush: a new session holding it.
        request.session["message"] = request.GET["message"]
    return state(request, message=request.session.get("message"))


def dump(request):
    return state(request, attrs={k: [type(v).__name__, v] for k, v in request.session.items()})


def late(request):
    # The page is written before the session changes: the middleware
    # sends the session once the view has returned, so the change is kept.
    from django.http import HttpResponse
    response = HttpResponse(content_type="text/plain")
    response.write("written\n")
    request.session["late"] = 1
    return response


def stream(request):
    # A streamed body runs after the middleware sent the session: its
    # change is lost (README).
    from django.http import StreamingHttpResponse
    request.session["early"] = 1

    def body():
        yield "first\n"
        request.session["late"] = 1
        yield "last\n"
    return StreamingHttpResponse(body(), content_type="text/plain")


def remember(request):
    # "Remember me": set_expiry(n) is the session's own ttl at the proxy,
    # with a persistent cookie; set_expiry(0) or None goes back.
    n = request.GET.get("n", "none")
    request.session["user"] = "ann"
    request.session.set_expiry(None if n == "none" else int(n))
    return state(request)


def big(request):
    request.session["big"] = "x" * int(request.GET["n"])
    return state(request)


def handler500(request):
    # Django's 500 handler, called while the error is being handled: the
    # middleware's SessionTooLarge, as a backend's save() error.
    from django.http import JsonResponse
    return JsonResponse({"error": repr(sys.exc_info()[1])}, status=500)


def urls():
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt
    return [
        path("django/visit", visit),
        path("django/whoami", whoami),
        path("django/login", csrf_exempt(login_view)),
        path("django/logout", logout_view),
        path("django/dump", dump),
        path("django/late", late),
        path("django/stream", stream),
        path("django/big", big),
        path("django/remember", remember),
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

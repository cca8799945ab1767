# trailwatch Python worker bootstrap (shipped inside the trailwatch binary, written to the
# function's working directory and run as `python -I -S? bootstrap.py`; see
# crates/trailwatch-python/src/lib.rs and docs/specs/python-runtime.md).
#
# Protocol: 4-byte big-endian length + UTF-8 JSON, both ways, over the worker's original
# stdin (requests) and stdout (answers). Before any user code runs, fds 0/1 are moved aside and
# fd 1 is pointed at fd 2, so everything the handler prints (stdout and stderr) goes to the log
# pipe that trailwatch reads separately. After each invocation a sentinel line is written to the
# log pipe so trailwatch knows it has all of that invocation's output.
import importlib
import json
import os
import signal
import struct
import sys
import tempfile
import threading
import time
import traceback

_PROTO_IN = os.fdopen(os.dup(0), "rb", buffering=0)
_PROTO_OUT = os.fdopen(os.dup(1), "wb", buffering=0)
_devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(_devnull, 0)
os.close(_devnull)
os.dup2(2, 1)
sys.stdin = open(os.devnull, "r")
sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)

SENTINEL = "\x1eTW-END:%s\x1e\n"


def _read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = _PROTO_IN.read(n - len(buf))
        if not chunk:
            sys.exit(0)  # trailwatch closed the pipe: stop quietly
        buf += chunk
    return buf


def recv():
    (n,) = struct.unpack(">I", _read_exact(4))
    return json.loads(_read_exact(n).decode("utf-8"))


def send(msg):
    data = json.dumps(msg).encode("utf-8")
    _PROTO_OUT.write(struct.pack(">I", len(data)) + data)


def flush_and_mark(request_id):
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass
    os.write(2, (SENTINEL % request_id).encode("utf-8"))


class _Logger(object):
    """context.getLogger(): Time-RequestID-Content lines on the invocation log."""

    def __init__(self, request_id):
        self._request_id = request_id

    def _log(self, level, msg):
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + (".%03dZ" % int((now % 1) * 1000))
        sys.stdout.write("%s %s %s %s\n" % (stamp, self._request_id, level, msg))

    def info(self, msg):
        self._log("INFO", msg)

    def warn(self, msg):
        self._log("WARN", msg)

    warning = warn

    def error(self, msg):
        self._log("ERROR", msg)

    def debug(self, msg):
        self._log("DEBUG", msg)


class Context(object):
    """The FunctionGraph `context` object (cloud-apis.md section 4.3)."""

    def __init__(self, request_id, timeout_ms, creds, alias):
        self.__request_id = request_id
        self.__start = time.monotonic()
        self.__timeout_ms = timeout_ms
        self.__creds = creds or {}
        self.__alias = alias or ""
        self.__logger = _Logger(request_id)
        try:
            self.__user_data = json.loads(os.environ.get("RUNTIME_USERDATA") or "{}")
        except ValueError:
            self.__user_data = {}

    def getRequestID(self):
        return self.__request_id

    def getRemainingTimeInMilliSeconds(self):
        elapsed = int((time.monotonic() - self.__start) * 1000)
        return max(0, self.__timeout_ms - elapsed)

    def getAccessKey(self):
        return self.__creds.get("access_key", "")

    def getSecretKey(self):
        return self.__creds.get("secret_key", "")

    def getSecurityAccessKey(self):
        return self.__creds.get("security_access_key", "")

    def getSecuritySecretKey(self):
        return self.__creds.get("security_secret_key", "")

    def getSecurityToken(self):
        return self.__creds.get("security_token", "")

    def getToken(self):
        return self.__creds.get("token", "")

    def getUserData(self, key, default=None):
        return self.__user_data.get(key, default)

    def getFunctionName(self):
        return os.environ.get("RUNTIME_FUNC_NAME", "")

    def getRunningTimeInSeconds(self):
        return int(os.environ.get("RUNTIME_TIMEOUT", "0"))

    def getVersion(self):
        return os.environ.get("RUNTIME_FUNC_VERSION", "latest")

    def getMemorySize(self):
        return int(os.environ.get("RUNTIME_MEMORY", "0"))

    def getCPUNumber(self):
        return int(os.environ.get("RUNTIME_CPU", "0"))

    def getPackage(self):
        return os.environ.get("RUNTIME_PACKAGE", "")

    def getProjectID(self):
        return os.environ.get("RUNTIME_PROJECT_ID", "")

    def getLogger(self):
        return self.__logger

    def getAlias(self):
        return self.__alias

    def getWorkflowID(self):
        return ""

    def getWorkflowRunID(self):
        return ""

    def getWorkflowStateID(self):
        return ""


def _resolve(spec, what):
    """`module.function` → the callable, or an error message naming what is missing."""
    module_name, sep, func_name = spec.rpartition(".")
    if not sep or not module_name or not func_name:
        return None, "%s `%s` must be `module.function`" % (what, spec)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            return None, "%s `%s`: module `%s` not found in the code package" % (what, spec, module_name)
        return None, "%s `%s`: importing `%s` failed:\n%s" % (what, spec, module_name, traceback.format_exc())
    except BaseException:
        return None, "%s `%s`: importing `%s` failed:\n%s" % (what, spec, module_name, traceback.format_exc())
    func = getattr(module, func_name, None)
    if func is None or not callable(func):
        return None, "%s `%s`: module `%s` has no function `%s`" % (what, spec, module_name, func_name)
    return func, None


def _error(exc_kind, message, tb=""):
    return {"type": "result", "ok": False, "kind": exc_kind, "error": message, "traceback": tb}


def _run(func, args):
    """Runs user code; returns (value, error-dict or None)."""
    try:
        return func(*args), None
    except MemoryError:
        return None, _error("memory", "MemoryError: the function exceeded its memory limit", traceback.format_exc())
    except SystemExit as e:
        return None, _error("exit", "the function called exit(%r)" % (e.code,), traceback.format_exc())
    except BaseException as e:
        return None, _error("exception", "%s: %s" % (type(e).__name__, e), traceback.format_exc())


def _watch_parent():
    """If trailwatch dies (even by SIGKILL), this worker and whatever it started go too: the
    worker leads its own process group, which the server would otherwise have killed."""
    parent = os.getppid()
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os.killpg(0, signal.SIGKILL)


def main():
    threading.Thread(target=_watch_parent, name="trailwatch-parent-watch", daemon=True).start()
    code_dir = os.environ.get("RUNTIME_CODE_ROOT", os.getcwd())
    # Vendored libraries live next to the handler: the code directory is first on sys.path.
    sys.path.insert(0, code_dir)
    os.chdir(code_dir)

    start = recv()  # sent once trailwatch has set this process's limits
    handler, err = _resolve(start["handler"], "handler")
    if err is None and start.get("initializer"):
        init, err = _resolve(start["initializer"], "initializer")
        if err is None:
            ctx = Context("init", int(start.get("initializer_timeout_ms", 0)), {}, "")
            _, failure = _run(init, (ctx,))
            if failure is not None:
                flush_and_mark("init")
                failure["error"] = "initializer `%s` failed: %s" % (start["initializer"], failure["error"])
                failure["type"] = "ready"
                send(failure)
                return
    flush_and_mark("init")
    if err is not None:
        send({"type": "ready", "ok": False, "kind": "load", "error": err, "traceback": ""})
        return
    send({"type": "ready", "ok": True})

    while True:
        req = recv()
        request_id = req["request_id"]
        tmp = req.get("tmp_dir")
        if tmp:
            os.environ["TMPDIR"] = tmp
            tempfile.tempdir = tmp
        ctx = Context(request_id, int(req["timeout_ms"]), req.get("credentials"), req.get("alias"))
        value, failure = _run(handler, (req["event"], ctx))
        if failure is None:
            try:
                answer = {"type": "result", "ok": True, "result": json.loads(json.dumps(value))}
                json.dumps(answer)
            except MemoryError:
                failure = _error("memory", "MemoryError: the function exceeded its memory limit")
            except BaseException as e:
                failure = _error("result", "the handler's return value is not JSON-serialisable: %s: %s" % (type(e).__name__, e))
        flush_and_mark(request_id)
        send(failure if failure is not None else answer)


if __name__ == "__main__":
    main()

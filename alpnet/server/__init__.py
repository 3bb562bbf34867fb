"""The classroom explorer: a local web page on a documented HTTP JSON API.

``alpnet serve`` starts it (``pip install "alpnet[serve]"`` brings FastAPI and
uvicorn; the default install does not need them). The page and the API run on
this machine only (127.0.0.1 by default) and need no internet: every asset is
served by alpnet.

Examples
--------
>>> from alpnet.server import create_app            # doctest: +SKIP
>>> app = create_app()                              # doctest: +SKIP
>>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import AlpnetError

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

    from ..model import Model

__all__ = ["create_app", "serve", "require_serve_extra", "MissingExtraError"]

_INSTALL = 'pip install "alpnet[serve]"'


class MissingExtraError(AlpnetError, ImportError):
    """FastAPI or uvicorn is not installed (the ``serve`` extra)."""


def _require(module: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"the classroom explorer needs {module}, which is not installed; "
                                f"install the serve extra: {_INSTALL}") from None


def require_serve_extra() -> None:
    """Check that FastAPI and uvicorn are installed.

    Raises
    ------
    MissingExtraError
        Naming the missing package and the command that installs it.
    """
    _require("fastapi")
    _require("uvicorn")


def create_app(model: "Model | None" = None, *, max_body_bytes: int | None = None) -> "FastAPI":
    """The explorer's FastAPI application.

    Parameters
    ----------
    model : Model, optional
        A loaded model; by default the bundled prior set is loaded (a few seconds).
    max_body_bytes : int, optional
        The largest request body accepted (default 64 KB); larger is a 413.

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    MissingExtraError
        When FastAPI is not installed; the message says how to install it.
    """
    _require("fastapi")
    from .app import MAX_BODY_BYTES, build_app

    if model is None:
        from ..model import load_model

        model = load_model()
    return build_app(model, max_body_bytes=MAX_BODY_BYTES if max_body_bytes is None else int(max_body_bytes))


def serve(model: "Model | None" = None, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the explorer with uvicorn until interrupted.

    Parameters
    ----------
    model : Model, optional
    host : str, default "127.0.0.1"
        Only this machine can connect; give ``0.0.0.0`` to let a classroom in.
    port : int, default 8000
    log_level : str, default "info"
    """
    require_serve_extra()
    import uvicorn

    app = create_app(model)
    uvicorn.run(app, host=host, port=port, log_level=log_level)



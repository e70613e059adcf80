"""Posterior thigh exam plugin: FHIR Questionnaire forms, coded Observations, decision support."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__version__ = "0.1.0"


def create_app(test_config: Mapping[str, Any] | None = None):  # type: ignore[no-untyped-def]
    """Build the Flask app: config, knowledge (checked), storage, security, blueprints, errors."""
    from flask import Flask

    from . import config, knowledge
    from .adapters import signing_key, store
    from .web import (auth, boundary, cds_hooks, errors, exam, fhir_api, oauth_token,
                      prom_pages, security, signin, smart, sso)

    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(config.DEFAULTS)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env("PLUGIN")
    else:
        app.config.update(test_config)
    app.json.sort_keys = False
    config.check(app.config)
    knowledge.init_app(app)
    store.init_app(app)
    if app.config.get("DATABASE_UPGRADE", True):  # the data step of the upgrade
        from .record import observations

        observations.backfill(store.from_app(app), app.extensions[knowledge.EXTENSION_KEY])
    # once per process; every worker reads the same key (SIGNING_KEY or the instance file)
    app.extensions[signing_key.EXTENSION_KEY] = signing_key.load(app.config, app.instance_path)
    boundary.init_app(app)  # first: its checks run before any other hook reads the request
    security.init_app(app)
    auth.init_app(app)  # after CSRF: the one guard deciding who may reach each endpoint
    app.register_blueprint(fhir_api.bp)
    app.register_blueprint(oauth_token.bp)
    app.register_blueprint(exam.bp)
    prom_pages.init_app(app)
    app.register_blueprint(cds_hooks.bp)
    app.register_blueprint(smart.bp)
    app.register_blueprint(signin.bp)
    sso.init_app(app)  # OIDC_PROVIDERS checked here: a typo stops start-up
    errors.init_app(app)
    return app

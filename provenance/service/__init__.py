"""``provenance serve``: the same :class:`~provenance.check.Checker` behind an HTTP API and a web page.

Needs the optional ``[serve]`` extra (FastAPI, uvicorn, python-multipart, fastapi-offline):
``pip install 'provenance[serve]'``. :mod:`provenance.service.config` and
:mod:`provenance.service.uploads` import nothing from it; :func:`provenance.service.app.create_app`
builds the application.
"""

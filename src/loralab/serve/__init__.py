"""``loralab serve``: a trained pronunciation-assessment model over HTTP, with a web page.

* :mod:`~loralab.serve.limits` - what a request may hold (size, duration, text) and the queue size;
* :mod:`~loralab.serve.inputs` - reading and checking a request (multipart or JSON base64);
* :mod:`~loralab.serve.batching` - the bounded queue that batches requests onto the model;
* :mod:`~loralab.serve.app` - the FastAPI application (``/``, ``/health``, ``/v1/assess``, ...);
* ``static/`` - the web page (no CDN: everything is served by the package itself).
"""

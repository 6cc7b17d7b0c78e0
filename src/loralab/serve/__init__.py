"""``loralab serve``: a trained pronunciation-assessment model over HTTP, with a web page.

* :mod:`~loralab.serve.limits` - what a request may hold (size, duration, text) and the queue size;
* :mod:`~loralab.serve.schema` - the request and answer models (Pydantic), which FastAPI validates
  and documents;
* :mod:`~loralab.serve.inputs` - checking what FastAPI parsed (text, audio bytes, decoding);
* :mod:`~loralab.serve.sizes` - the request-body guard (size and read time, while it streams);
* :mod:`~loralab.serve.batching` - the bounded queue that batches requests onto the model;
* :mod:`~loralab.serve.service` - the model behind the routes (queue, checks, health);
* :mod:`~loralab.serve.routes` - the API's routes (``/health``, ``/v1/assess``, ...);
* :mod:`~loralab.serve.docs` - ``/openapi.json`` and an offline ``/docs``;
* :mod:`~loralab.serve.app` - the FastAPI application and its JSON errors;
* ``static/`` - the web page (no CDN: everything is served by the package itself).
"""

"""The segmentation server: one resident SAM 3 engine shared by many clients over HTTP.

``api.create_app`` builds the FastAPI app (dynamic batching, image registry, auth, limits, metrics),
``client.RemoteSegmenter`` is the ``Segmenter`` that talks to it, ``ray_serve`` scales it out over GPUs,
``command.serve`` is ``sam3-agent serve``. Needs the ``server`` extra (fastapi, uvicorn, prometheus-client).
"""

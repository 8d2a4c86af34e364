"""The registry, reached over its HTTP API (the distribution spec) with the run's docker login.

- `http.py`: the login from the docker config, TLS, one request, failures in the tools' words;
- `keepalive.py`: the kept-alive connections those requests share;
- `layout.py`: an OCI layout folder, read as what to push in which order;
- `push.py`: a push of that layout by digest, a tag published or deleted;
- `referrers.py`: cosign 3's bundles, as a client finds them (the referrers API or its tag).
"""

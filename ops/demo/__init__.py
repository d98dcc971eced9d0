"""The embedded demo: a generated corpus, the local web server that serves it, its configuration.

    corpus.py   the deterministic corpus (originals, duplicates, every fault kind) and its manifest
    server.py   the local search engine and image hosts with the real web's faults
    config.py   the demo configuration (keyword sets, provider, limits)
"""

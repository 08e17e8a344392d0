"""Workers the real-node e2e test needs beyond the shipped examples (tests/e2e/test_real_node.py).

Owns only job bodies; must not import anything of the tests (it runs inside the image).
"""

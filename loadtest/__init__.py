"""Locust load tests of the hashrec service.

``loadtest/locustfile.py`` is the Locust file (users, request mix, response checks);
``loadtest/step_shape.py`` holds the step-ramp load shape; ``hashrec loadtest`` (``loadtest.run``)
runs them headless and writes a summary; ``python -m hashrec.loadtest ARGS`` is ``locust`` with this
package's locustfile (used for distributed workers). ``loadtest/config.py`` holds the settings
(``LoadTestConfig``) and their one set of defaults (``DEFAULTS``), read by all three.

Only ``locustfile.py``, ``step_shape.py`` and ``__main__.py`` import Locust (and so gevent); the other
modules are plain Python and safe to import anywhere.
"""

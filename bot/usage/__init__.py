"""Usage events and adoption (issue #29): what people use of the platform, measured next to what
they report. Events come in signed over HTTP (``endpoint``) or from the CLI, are stored once by the
caller's id (``events``), measured per capability and ISO week (``adoption``), and may be followed by
a one-question CSAT DM at the moment of use (``csat``)."""

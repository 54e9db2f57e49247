"""roachctl: deploy and operate secure CockroachDB clusters over SSH, or run one locally."""

__version__ = "0.1.0"

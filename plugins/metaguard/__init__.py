"""MetaGuard: nightly batch fraud scoring on Apache Airflow."""

__version__ = "0.1.0"

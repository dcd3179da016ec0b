"""Airflow Assets that MetaGuard's DAGs publish, defined once for every DAG."""

from __future__ import annotations

from airflow.sdk import Asset

RISK_REPORTS = Asset(name="metaguard_risk_reports", uri="metaguard://risk_reports")
CHAMPION_MODEL = Asset(name="metaguard_champion_model", uri="metaguard://champion")
QUALITY_REPORTS = Asset(name="metaguard_quality_reports", uri="metaguard://quality")

"""Lab-grade reports of a run: run folders, the results model, the signable test report (HTML + PDF),
run-to-run comparison and Allure history.

- `runs`       one folder per `v2g-bench run` (reports/runs/<id>), its manifest, `latest`, Allure history
- `results`    a run's results read back tolerantly (missing, partial or foreign folders say so)
- `testreport` the ISO/IEC 17025-style test report, HTML and PDF (WeasyPrint)
- `compare`    verdict changes and figure drift between two runs
- `figures`    measured figures with their uncertainty, recorded by tests into their evidence
"""

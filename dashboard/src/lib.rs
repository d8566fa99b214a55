//! The dashboard: routes, views, queries, templates and the alert evaluator.

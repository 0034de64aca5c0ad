"""The mixture search: flat-Dirichlet weights, the Optuna study and its trials, objectives, reports."""

"""What studies found, shown and measured: reports, figures, the dashboard, comparisons
of methods, ground-truth scores and retraining. It reads finished studies and never runs
a search."""

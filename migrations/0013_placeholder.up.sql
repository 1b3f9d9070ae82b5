-- PLACEHOLDER so this branch migrates on its own: the integrator drops it (another branch owns 0013).
SELECT 1;

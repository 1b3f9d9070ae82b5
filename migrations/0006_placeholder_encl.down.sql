-- Placeholder of branch encl so that its 0007 runs (versions run without gaps): another
-- branch has the real 0006. Drop this file when merging.
SELECT 1;

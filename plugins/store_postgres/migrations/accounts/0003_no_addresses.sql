-- Login throttling used to key failures per client by its raw address ("ip:203.0.113.9");
-- it now uses a keyed pseudonym. Forget the old rows: a raw address is never kept.
DELETE FROM login_failures WHERE key LIKE 'ip:%.%' OR key LIKE 'ip:%:%';

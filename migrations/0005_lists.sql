-- The mailing lists people search: by a request's numéro (a prefix of it), by the applicant's
-- name (a prefix, as the registry writes it, in capitals), by reception day.
CREATE INDEX requests_by_numero ON requests (numero_unique text_pattern_ops);
CREATE INDEX mailings_by_numero ON mailings (numero_unique text_pattern_ops);
CREATE INDEX registry_by_nom ON registry_demandes ((upper(record->>'nom')) text_pattern_ops);

"""annotation_lease_take(): the queue's common lease path as one PostgreSQL function, so a rater's
fetch takes its lease in one round trip instead of four (BEGIN, lock a candidate, insert, COMMIT).

It runs exactly the statements of annotation.queue._take for non-gold tasks, in the same order; a
VOLATILE PL/pgSQL function takes a fresh snapshot for each statement, so the insert still re-counts the
leases after the candidate's row lock, as the Python path does. SQLite has no such function: there
the Python path runs. Reversible (the function is dropped).
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION annotation_lease_take(
    p_study bigint, p_rater bigint, p_now timestamptz, p_until timestamptz, p_attempts integer,
    OUT o_assignment bigint, OUT o_task bigint
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    skipped bigint[] := '{}';
    candidate bigint;
    stale boolean;
BEGIN
    FOR attempt IN 1..p_attempts LOOP
        -- the first open task (queue order) the rater never had, row-locked; locked ones are skipped
        SELECT t.id, EXISTS (SELECT 1 FROM annotation_assignment x WHERE x.task_id = t.id
                             AND x.status = 'active' AND x.expires_at <= p_now)
          INTO candidate, stale
          FROM annotation_task t
         WHERE t.study_id = p_study AND t.is_gold = false
           AND t.rating_count < t.required_ratings
           AND t.rating_count + (SELECT COUNT(*) FROM annotation_assignment a WHERE a.task_id = t.id
                                 AND a.status = 'active' AND a.expires_at > p_now) < t.required_ratings
           AND NOT EXISTS (SELECT 1 FROM annotation_assignment s WHERE s.task_id = t.id AND s.rater_id = p_rater)
           AND t.id <> ALL (skipped)
         ORDER BY t.order_key LIMIT 1
           FOR UPDATE OF t SKIP LOCKED;
        IF candidate IS NULL THEN
            RETURN;
        END IF;
        -- a fresh statement, hence a fresh snapshot: insert the lease only if the task still has room
        INSERT INTO annotation_assignment
               (task_id, study_id, rater_id, status, leased_at, expires_at, finished_at, skip_reason)
        SELECT t.id, p_study, p_rater, 'active', p_now, p_until, NULL, '' FROM annotation_task t
         WHERE t.id = candidate
           AND t.rating_count + (SELECT COUNT(*) FROM annotation_assignment a WHERE a.task_id = t.id
                                 AND a.status = 'active' AND a.expires_at > p_now) < t.required_ratings
        RETURNING id INTO o_assignment;
        IF o_assignment IS NOT NULL THEN
            o_task := candidate;
            IF stale THEN
                -- lapsed leases marked lazily; a late submitter's locked row is skipped, not waited for
                UPDATE annotation_assignment SET status = 'expired', finished_at = p_now WHERE id IN (
                    SELECT id FROM annotation_assignment WHERE task_id = candidate AND status = 'active'
                       AND expires_at <= p_now FOR UPDATE SKIP LOCKED);
            END IF;
            RETURN;
        END IF;
        skipped := skipped || candidate;
        candidate := NULL;
    END LOOP;
END
$$;
"""

DROP = "DROP FUNCTION IF EXISTS annotation_lease_take(bigint, bigint, timestamptz, timestamptz, integer);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("annotation", "0003_task_open_queue_partial_index")]

    operations = [migrations.RunPython(create, drop, elidable=False)]

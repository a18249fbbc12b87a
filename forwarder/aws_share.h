/* aws_share: `dicom-core share`, the operator's study sharing (issue 15 "Sharing"), as the aws
 * backend's subcommand. Grants live in the DynamoDB state table (forwarder/schema/, docs/
 * forwarder.md "Grant items"): pk "GRANT", sk "<client_id>#<StudyInstanceUID>", with grantee,
 * grant_study, expires_at (unix seconds), ttl (expiry plus 30 days, when DynamoDB may drop the
 * item), created_at and, once revoked, revoked_at. The read side (aws_read_scope.c) reads them
 * for a SHARED scope at every association: an expired or revoked grant stops the next query.
 *
 *   share --study UID --to CLIENT_ID --hours N    grant (again: renews, and undoes a revoke)
 *   share --revoke --study UID --to CLIENT_ID     revoke now
 *   share --list [--to CLIENT_ID] [--json]        grants with their state
 *   share --credentials --study UID --hours N [--format json|env]
 *         temporary AWS credentials of the reader role whose session policy allows the
 *         DICOMweb reads of that study only, for a DICOMweb viewer (AWS limits a session to one
 *         hour when the caller is itself an assumed role, as an ECS task is)
 * Every action is logged (share_granted, share_revoked, share_credentials) without the secret. */
#ifndef GW_AWS_SHARE_H
#define GW_AWS_SHARE_H

/* Run `share` with argv[0] "share" and config_json the aws backend's object. Returns the exit
 * status: 0, 1 (failed), 2 (usage). */
int aws_share_cli(int argc, char **argv, const char *config_json);

#endif

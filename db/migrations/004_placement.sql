-- 004: where each trial ran, so results from a mixed cluster can be told apart.
-- trials.node_id: the Ray node id (hex); host: the machine's host name; node_ip: the Ray node's IP address;
-- gpu_model: torch.cuda.get_device_name of the GPU the trial used (NULL on the CPU); torch_version: torch.__version__;
-- cuda_version: torch.version.cuda (NULL for a CPU build of torch). trials.device now names the GPU with its index on
-- its node (cuda:N) where older rows said cuda. Rows recorded before this migration keep NULL in the new columns.

ALTER TABLE trials ADD COLUMN node_id VARCHAR;
ALTER TABLE trials ADD COLUMN host VARCHAR;
ALTER TABLE trials ADD COLUMN node_ip VARCHAR;
ALTER TABLE trials ADD COLUMN gpu_model VARCHAR;
ALTER TABLE trials ADD COLUMN torch_version VARCHAR;
ALTER TABLE trials ADD COLUMN cuda_version VARCHAR;

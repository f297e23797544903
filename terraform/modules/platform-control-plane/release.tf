# The release this environment runs, for release gates to compare
# (terraform/README.md, "Promotion").
resource "aws_s3_object" "release" {
  count                  = var.release == null ? 0 : 1
  bucket                 = aws_s3_bucket.this["config"].id
  key                    = "releases/current.json"
  content                = jsonencode(var.release)
  content_type           = "application/json"
  server_side_encryption = "aws:kms"
  kms_key_id             = aws_kms_key.platform.arn

  depends_on = [aws_s3_bucket_server_side_encryption_configuration.this]
}

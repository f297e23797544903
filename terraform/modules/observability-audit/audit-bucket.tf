# The evidence: sealed audit segments, heads and stream indexes
# ([audit.s3]). Object Lock with a default retention locks every object
# version as it is written, whatever the writer asks; the host also sets
# the mode and retain-until date on each segment it seals.

resource "aws_s3_bucket" "audit" {
  bucket              = coalesce(var.audit_bucket_name, "${var.name_prefix}-audit")
  object_lock_enabled = true
  tags                = var.tags
}

resource "aws_s3_bucket_ownership_controls" "audit" {
  bucket = aws_s3_bucket.audit.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "audit" {
  bucket                  = aws_s3_bucket.audit.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "audit" {
  bucket = aws_s3_bucket.audit.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id
  rule {
    default_retention {
      mode = var.audit_retention_mode
      days = var.audit_retention_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.audit]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.audit.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    id     = "glacier-after-retention"
    status = "Enabled"
    filter {}

    transition {
      days          = var.audit_retention_days
      storage_class = "GLACIER"
    }
    noncurrent_version_transition {
      noncurrent_days = var.audit_retention_days
      storage_class   = "GLACIER"
    }

    dynamic "expiration" {
      for_each = var.audit_expire_after_days == null ? [] : [var.audit_expire_after_days]
      content {
        days = expiration.value
      }
    }
    dynamic "noncurrent_version_expiration" {
      for_each = var.audit_expire_after_days == null ? [] : [var.audit_expire_after_days]
      content {
        noncurrent_days = noncurrent_version_expiration.value
      }
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  lifecycle {
    precondition {
      condition     = var.audit_expire_after_days == null ? true : var.audit_expire_after_days > var.audit_retention_days
      error_message = "audit_expire_after_days must be later than audit_retention_days: a locked object cannot expire."
    }
  }

  depends_on = [aws_s3_bucket_versioning.audit]
}

resource "aws_s3_bucket_policy" "audit" {
  bucket = aws_s3_bucket.audit.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.audit.arn, "${aws_s3_bucket.audit.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        # Evidence is encrypted with the audit key: a put that names
        # another key is refused (one that names none gets the default).
        Sid       = "DenyOtherKeys"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.audit.arn}/*"
        Condition = {
          Null            = { "s3:x-amz-server-side-encryption-aws-kms-key-id" = "false" }
          StringNotEquals = { "s3:x-amz-server-side-encryption-aws-kms-key-id" = aws_kms_key.audit.arn }
        }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.audit]
}

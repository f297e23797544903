# What invokes the live alias: the events queue, HTTP (a Function URL, or
# tool-gateway) and the settle schedule.

resource "aws_lambda_event_source_mapping" "queue" {
  count            = var.queue == null ? 0 : 1
  event_source_arn = var.queue.arn
  function_name    = aws_lambda_alias.live.arn
  batch_size       = var.queue.batch_size
  # The host answers with batchItemFailures: only the failed messages
  # come back, the rest of the batch is deleted.
  function_response_types            = ["ReportBatchItemFailures"]
  maximum_batching_window_in_seconds = var.queue.max_batching_window_seconds

  dynamic "scaling_config" {
    for_each = var.queue.max_concurrency == null ? [] : [var.queue.max_concurrency]
    content {
      maximum_concurrency = scaling_config.value
    }
  }
}

# The host authenticates every request but /healthz and /readyz itself,
# with the bearer token in the Authorization header. IAM auth would need
# that header for SigV4, so no caller could present the token: the URL is
# open at the edge and the host's token check is the gate (as for the
# containers behind their load balancer).
resource "aws_lambda_function_url" "live" {
  count              = var.http_entry == "function-url" ? 1 : 0
  function_name      = aws_lambda_function.this.function_name
  qualifier          = aws_lambda_alias.live.name
  authorization_type = "NONE"
  invoke_mode        = "BUFFERED"
}

# An open URL still needs the resource policy that lets anyone invoke it
# (both statements, as Lambda asks for since October 2025).
resource "aws_lambda_permission" "url" {
  count                  = var.http_entry == "function-url" ? 1 : 0
  statement_id           = "function-url"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.this.function_name
  qualifier              = aws_lambda_alias.live.name
  principal              = "*"
  function_url_auth_type = "NONE"
}

resource "aws_lambda_permission" "url_invoke" {
  count         = var.http_entry == "function-url" ? 1 : 0
  statement_id  = "function-url-invoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  qualifier     = aws_lambda_alias.live.name
  principal     = "*"
}

# Schedule rules live on the default bus.
resource "aws_cloudwatch_event_rule" "settle" {
  count               = var.settle_schedule == null ? 0 : 1
  name                = "${local.function_name}-settle"
  description         = "Settles paused workflows whose approval was decided elsewhere or expired"
  schedule_expression = var.settle_schedule
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "settle" {
  count     = var.settle_schedule == null ? 0 : 1
  rule      = aws_cloudwatch_event_rule.settle[0].name
  target_id = "agenthost-settle"
  arn       = aws_lambda_alias.live.arn
  input     = jsonencode({ settle = true })
}

resource "aws_lambda_permission" "settle" {
  count         = var.settle_schedule == null ? 0 : 1
  statement_id  = "settle-schedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  qualifier     = aws_lambda_alias.live.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.settle[0].arn
}

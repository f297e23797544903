# The tool gateway: an HTTP API in front of either runtime. Data-plane
# routes need a JWT from the configured issuer (checked here, then again
# by the host with its tenants and roles); the routes the host answers
# without a token need SigV4. Throttled per stage, access-logged.
#
# WAF: AWS WAF web ACLs attach to REST API stages, not to HTTP APIs, and a
# REST API cannot check an arbitrary OIDC issuer's JWT without a Lambda
# authorizer. This module keeps the HTTP API; README.md says how to put
# WAF in front.

resource "aws_apigatewayv2_api" "this" {
  name          = "${var.name_prefix}-api"
  protocol_type = "HTTP"
  description   = "agenthost: tools, agents, runs, approvals"
  tags          = var.tags
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  api_id           = aws_apigatewayv2_api.this.id
  name             = "jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]
  jwt_configuration {
    issuer   = var.jwt.issuer
    audience = var.jwt.audiences
  }
}

resource "aws_apigatewayv2_vpc_link" "this" {
  count              = var.backend.http == null ? 0 : 1
  name               = "${var.name_prefix}-api"
  subnet_ids         = var.backend.http.subnet_ids
  security_group_ids = var.backend.http.security_group_ids
  tags               = var.tags
}

resource "aws_apigatewayv2_integration" "runtime" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = var.backend.lambda != null ? "AWS_PROXY" : "HTTP_PROXY"
  integration_uri        = var.backend.lambda != null ? var.backend.lambda.invoke_arn : var.backend.http.listener_arn
  integration_method     = var.backend.lambda != null ? "POST" : "ANY"
  payload_format_version = var.backend.lambda != null ? "2.0" : "1.0"
  connection_type        = var.backend.http != null ? "VPC_LINK" : "INTERNET"
  connection_id          = one(aws_apigatewayv2_vpc_link.this[*].id)
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "jwt" {
  for_each           = toset(var.jwt_routes)
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.value
  authorization_type = "JWT"
  authorizer_id      = aws_apigatewayv2_authorizer.jwt.id
  target             = "integrations/${aws_apigatewayv2_integration.runtime.id}"
}

resource "aws_apigatewayv2_route" "iam" {
  for_each           = toset(var.iam_routes)
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.value
  authorization_type = "AWS_IAM"
  target             = "integrations/${aws_apigatewayv2_integration.runtime.id}"
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/aws/apigateway/${var.name_prefix}-api"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# The $default stage serves at the root: the host sees its own paths.
resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit    = var.throttling.rate_limit
    throttling_burst_limit   = var.throttling.burst_limit
    detailed_metrics_enabled = true
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId      = "$context.requestId"
      ip             = "$context.identity.sourceIp"
      time           = "$context.requestTime"
      method         = "$context.httpMethod"
      path           = "$context.path"
      routeKey       = "$context.routeKey"
      status         = "$context.status"
      latencyMs      = "$context.responseLatency"
      authorizerErr  = "$context.authorizer.error"
      jwtSub         = "$context.authorizer.claims.sub"
      iamArn         = "$context.identity.userArn"
      integrationErr = "$context.integrationErrorMessage"
    })
  }

  tags = var.tags
}

resource "aws_lambda_permission" "gateway" {
  count         = var.backend.lambda == null ? 0 : 1
  statement_id  = "tool-gateway"
  action        = "lambda:InvokeFunction"
  function_name = var.backend.lambda.function_name
  qualifier     = var.backend.lambda.qualifier
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}

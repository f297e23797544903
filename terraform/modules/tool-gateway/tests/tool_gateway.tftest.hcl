# The gateway's authorization, throttling and logs, on a mocked AWS provider.

mock_provider "aws" {
  override_during = plan

  mock_resource "aws_apigatewayv2_api" {
    defaults = { execution_arn = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/apigateway/agenthost-test-api" }
  }
}

variables {
  name_prefix = "agenthost-test"
  kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  jwt         = { issuer = "https://login.example.com", audiences = ["agenthost"] }
  backend = {
    lambda = {
      function_name = "agenthost-test-runtime"
      qualifier     = "live"
      invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:agenthost-test-runtime:live/invocations"
    }
  }
}

run "every_route_is_authorized" {
  command = plan

  assert {
    condition     = alltrue([for r in aws_apigatewayv2_route.jwt : r.authorization_type == "JWT"])
    error_message = "Data-plane routes need a JWT."
  }
  assert {
    condition     = contains(keys(aws_apigatewayv2_route.jwt), "ANY /v1/{proxy+}")
    error_message = "Every /v1 route is behind the JWT authorizer."
  }
  assert {
    condition     = alltrue([for r in aws_apigatewayv2_route.iam : r.authorization_type == "AWS_IAM"])
    error_message = "Token-less routes need SigV4."
  }
  assert {
    condition     = aws_apigatewayv2_authorizer.jwt.jwt_configuration[0].issuer == "https://login.example.com" && aws_apigatewayv2_authorizer.jwt.identity_sources == toset(["$request.header.Authorization"])
    error_message = "The authorizer checks bearer tokens of the configured issuer."
  }
}

run "the_stage_is_throttled_and_logged" {
  command = plan

  assert {
    condition     = aws_apigatewayv2_stage.default.default_route_settings[0].throttling_rate_limit == 100 && aws_apigatewayv2_stage.default.default_route_settings[0].throttling_burst_limit == 200
    error_message = "The stage is throttled."
  }
  assert {
    condition     = aws_apigatewayv2_stage.default.access_log_settings[0].destination_arn == aws_cloudwatch_log_group.access.arn
    error_message = "Access is logged."
  }
  assert {
    condition     = aws_cloudwatch_log_group.access.kms_key_id == var.kms_key_arn
    error_message = "Access logs are encrypted."
  }
}

run "only_this_api_invokes_the_function" {
  command = plan

  assert {
    condition = (aws_lambda_permission.gateway[0].principal == "apigateway.amazonaws.com" &&
      aws_lambda_permission.gateway[0].source_arn == "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/*/*" &&
    aws_lambda_permission.gateway[0].qualifier == "live")
    error_message = "The permission names this API and the live alias."
  }
  assert {
    condition     = aws_apigatewayv2_integration.runtime.payload_format_version == "2.0"
    error_message = "Lambda gets payload format 2.0."
  }
}

run "both_backends_is_refused" {
  command = plan

  variables {
    backend = {
      lambda = var.backend.lambda
      http   = { listener_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/net/x/1/2", subnet_ids = ["subnet-1"], security_group_ids = ["sg-1"] }
    }
  }

  expect_failures = [var.backend]
}

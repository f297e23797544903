# Security and delivery properties of the event bus, on a mocked AWS provider.

mock_provider "aws" {
  override_during = plan

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:us-east-1:123456789012:agenthost-test-events"
      url = "https://sqs.us-east-1.amazonaws.com/123456789012/agenthost-test-events"
    }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:us-east-1:123456789012:rule/agenthost-test/agenthost-test-events-agenthost-events" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/agenthost-test-durable-run" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/vendedlogs/states/agenthost-test-durable-run" }
  }
}

variables {
  name_prefix      = "agenthost-test"
  kms_key_arn      = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  sender_role_arns = ["arn:aws:iam::123456789012:role/agenthost-test-runtime"]
}

run "queues_are_encrypted_with_a_dead_letter_queue" {
  command = plan

  assert {
    condition     = aws_sqs_queue.events.kms_master_key_id == var.kms_key_arn && aws_sqs_queue.dlq.kms_master_key_id == var.kms_key_arn
    error_message = "Both queues are encrypted with the customer key."
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.events.redrive_policy).maxReceiveCount == 8
    error_message = "The events queue redrives to the dead-letter queue after max_receive_count receives."
  }
  assert {
    condition     = aws_sqs_queue.events.name == "agenthost-test-events"
    error_message = "The queue is <name_prefix>-events, the name host.toml's [events] queue gives."
  }
}

run "only_the_rule_and_listed_roles_send" {
  command = plan

  assert {
    condition = anytrue([for s in jsondecode(aws_sqs_queue_policy.events.policy).Statement :
      s.Effect == "Allow" && s.Principal == { Service = "events.amazonaws.com" } &&
    try(s.Condition.ArnEquals["aws:SourceArn"], "") == aws_cloudwatch_event_rule.to_queue.arn])
    error_message = "The bus's rule may send, and only from that rule."
  }
  assert {
    condition = anytrue([for s in jsondecode(aws_sqs_queue_policy.events.policy).Statement :
      s.Effect == "Deny" && s.Action == "sqs:SendMessage" &&
      try(s.Condition.ArnNotEquals["aws:SourceArn"], "") == aws_cloudwatch_event_rule.to_queue.arn &&
      try(toset(s.Condition.ArnNotLike["aws:PrincipalArn"]), toset([])) == toset(concat(var.sender_role_arns, [aws_iam_role.workflow[0].arn]))
    ])
    error_message = "Every other sender is denied: the exceptions are the rule, the listed roles and the workflow."
  }
  assert {
    condition = alltrue([for s in jsondecode(aws_sqs_queue_policy.events.policy).Statement :
    s.Effect == "Deny" || s.Principal != "*"])
    error_message = "No statement allows everyone."
  }
}

run "workflow_logs_and_traces" {
  command = plan

  assert {
    condition     = aws_sfn_state_machine.durable_run["this"].type == "STANDARD"
    error_message = "Durable runs wait on task tokens, which only Standard workflows do."
  }
  assert {
    condition     = aws_sfn_state_machine.durable_run["this"].tracing_configuration[0].enabled
    error_message = "The workflow is traced."
  }
  assert {
    condition     = aws_sfn_state_machine.durable_run["this"].logging_configuration[0].level != "OFF" && !aws_sfn_state_machine.durable_run["this"].logging_configuration[0].include_execution_data
    error_message = "The workflow logs, without execution data (call inputs may hold sensitive fields) by default."
  }
  assert {
    condition     = jsondecode(aws_sfn_state_machine.durable_run["this"].definition).States.Run.Resource == "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    error_message = "The default workflow sends the call to the queue and waits on its task token."
  }
  assert {
    condition     = aws_cloudwatch_log_group.workflow["this"].kms_key_id == var.kms_key_arn
    error_message = "The workflow's log group is encrypted."
  }
  assert {
    condition = alltrue([for s in jsondecode(aws_iam_role_policy.workflow[0].policy).Statement :
    alltrue([for a in s.Action : !strcontains(a, "*")])])
    error_message = "The workflow role names every action."
  }
}

run "archive_keeps_agenthost_events" {
  command = plan

  assert {
    condition     = jsondecode(aws_cloudwatch_event_archive.this.event_pattern) == jsondecode(aws_cloudwatch_event_rule.to_queue.event_pattern)
    error_message = "The archive keeps what the rule delivers."
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.to_queue.event_pattern).source[0].prefix == "agenthost."
    error_message = "The rule matches the host's sources (agenthost.<tenant>)."
  }
}

run "lambda_workflow_from_the_bundled_template" {
  command = plan

  variables {
    durable_runs = {
      asl_path             = "asl/durable-run-lambda.asl.json"
      substitutions        = { function_arn = "arn:aws:lambda:us-east-1:123456789012:function:agenthost-test-runtime:live" }
      invoke_function_arns = ["arn:aws:lambda:us-east-1:123456789012:function:agenthost-test-runtime:live"]
    }
  }

  assert {
    condition     = jsondecode(aws_sfn_state_machine.durable_run["this"].definition).States.Run.Parameters.FunctionName == "arn:aws:lambda:us-east-1:123456789012:function:agenthost-test-runtime:live"
    error_message = "The Lambda template invokes the given alias."
  }
  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.workflow[0].policy).Statement :
    toset(s.Action) == toset(["lambda:InvokeFunction"]) && toset(s.Resource) == toset(var.durable_runs.invoke_function_arns)])
    error_message = "The workflow may invoke exactly the listed functions."
  }
}

run "logging_cannot_be_turned_off" {
  command = plan

  variables {
    durable_runs = { log_level = "OFF" }
  }

  expect_failures = [var.durable_runs]
}

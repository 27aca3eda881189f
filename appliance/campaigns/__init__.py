"""Campaigns as desired state: the signed document, its verification, the content store,
activation with rollback, and the scheduler that decides which bundle is on screen."""

from appliance.campaigns.document import Asset, CampaignEntry, Document, DocumentBody, Schedule
from appliance.campaigns.errors import Rejected, Unreachable
from appliance.campaigns.manager import CampaignManager
from appliance.campaigns.releases import Release, ScheduledCampaign
from appliance.campaigns.scheduler import Scheduler
from appliance.campaigns.signing import canonical_json, load_trusted_keys, sign_document, verify_document

__all__ = ["Asset", "CampaignEntry", "CampaignManager", "Document", "DocumentBody", "Rejected", "Release",
           "Schedule", "ScheduledCampaign", "Scheduler", "Unreachable", "canonical_json", "load_trusted_keys",
           "sign_document", "verify_document"]

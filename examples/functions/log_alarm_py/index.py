import json
import base64
import re
import sys
import os
import requests

import boto3
import botocore.config
import botocore.exceptions

current_file_path = os.path.dirname(os.path.realpath(__file__))
# append current path to search paths, so that we can import some third party libraries.
sys.path.append(current_file_path)

# The tutorial hard-coded region = 'eu-de'; the region is now the RegionName user-data variable
# (as in the first function), falling back to the runtime's RUNTIME_REGION.
region = os.environ.get('RUNTIME_REGION', 'eu-de')
path_style = True

# Alarm levels, matched as trailwatch's builtin `log_alarm` does (crates/trailwatch-functions/
# src/levels.rs). The tutorial's `"ERR" in json.dumps(log)` flagged any record whose JSON held
# those letters anywhere (`TERRA`, `ERRORS_TOTAL=0`, a host or path name), missed lower-case
# `error`, and never saw a message at all because it iterated over the characters of the `logs`
# string. The rule looks at the record's `message` only; the first rule that applies decides:
#  1. the message is a JSON object with a `level`, `severity` or `lvl` member (key
#     case-insensitive, first of the three in that order): alarm iff that member is a string
#     equal (case-insensitively, trimmed) to one of LEVELS;
#  2. the message has a logfmt `level=`, `lvl=` or `severity=` key (at the start or after
#     whitespace, key case-insensitive; the first one): alarm iff its value (up to whitespace,
#     or double-quoted) is one of LEVELS;
#  3. otherwise alarm iff one of LEVELS occurs as a whole word, case-insensitively, a word being
#     a maximal run of ASCII letters, digits and `_` (`[WRN]`, `error:` match; `TERRA`,
#     `ERRORS_TOTAL=0`, `WARNINGS`, `errno` do not).
LEVELS = ("WARN", "WARNING", "WRN", "ERROR", "ERR", "FATAL", "CRITICAL")
LOGFMT_LEVEL = re.compile(r'(?:^|(?<=\s))(?:level|lvl|severity)=("[^"]*"?|\S*)', re.IGNORECASE)
WORD = re.compile(r'[A-Za-z0-9_]+')


def is_level(value):
    return isinstance(value, str) and value.strip().upper() in LEVELS


def isAlarm(message):
    trimmed = message.strip()
    if trimmed.startswith('{') and trimmed.endswith('}'):
        try:
            obj = json.loads(trimmed)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            for key in ("level", "severity", "lvl"):
                for k, v in obj.items():
                    if k.lower() == key:
                        return is_level(v)
    m = LOGFMT_LEVEL.search(message)
    if m:
        value = m.group(1)
        if value.startswith('"'):
            value = value[1:].split('"', 1)[0]
        return is_level(value)
    return any(w.upper() in LEVELS for w in WORD.findall(message))


def s3Client(obsAddr, ak, sk):
    # The OBS SDK's ObsClient is replaced by boto3's S3 client against the S3-compatible endpoint
    # in obs_address (https:// is assumed when it has no scheme, as the tutorial's secure=True,
    # port=443). The tutorial's ssl_verify=False is dropped: certificates are verified.
    if "://" not in obsAddr:
        obsAddr = "https://" + obsAddr
    options = {"s3": {"addressing_style": "path" if path_style else "auto"},
               "retries": {"max_attempts": 5}, "connect_timeout": 20, "read_timeout": 20}
    try:
        # botocore >= 1.36 adds CRC checksums to every upload, which some S3-compatible stores
        # refuse; only send them when the operation requires one.
        config = botocore.config.Config(request_checksum_calculation="when_required",
                                        response_checksum_validation="when_required", **options)
    except TypeError:
        config = botocore.config.Config(**options)
    return boto3.client("s3", endpoint_url=obsAddr, aws_access_key_id=ak, aws_secret_access_key=sk,
                        region_name=region, config=config)


def GetObject(obsAddr, bucketName, objName, ak, sk):
    # The existing object, in memory (the tutorial downloaded it to /tmp/<objName>, where a stale
    # copy from an earlier invocation of a warm instance survived a failed download).
    try:
        resp = s3Client(obsAddr, ak, sk).get_object(Bucket=bucketName, Key=objName)
    except botocore.exceptions.ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        print('*** GetObject resp: ', status, e.response.get("Error", {}).get("Code"))
        return (int(status), b"")
    body = resp["Body"].read()
    print('*** GetObject resp: ', resp["ResponseMetadata"]["HTTPStatusCode"], len(body), "bytes")
    return (int(resp["ResponseMetadata"]["HTTPStatusCode"]), body)


def PostObject(obsAddr, bucket, objName, ak, sk, content):
    resp = s3Client(obsAddr, ak, sk).put_object(Bucket=bucket, Key=objName, Body=content,
                                                ContentType='text/plain', Metadata={'key': 'value'})
    print('*** PostObject, common msg: status:', resp["ResponseMetadata"]["HTTPStatusCode"])
    return int(resp["ResponseMetadata"]["HTTPStatusCode"])


def checkAlarmLogs(logs):
    alarmlogs = []
    for log in logs:
        if isAlarm(str(log.get("message", ""))):
            alarmlogs.append(log)
    return alarmlogs


def log_store(content, logs):
    # One JSON record per line appended to the existing content (the tutorial re-encoded the
    # already encoded records and stripped every backslash, corrupting quotes in messages).
    if content and not content.endswith(b'\n'):
        content += b'\n'
    for log in logs:
        content += (json.dumps(log) + '\n').encode('utf-8')
    return content


def handler(event, context):
    # Obtains the data of lts logs.
    print ("*********the data of lts logs********")
    encodingData = event["lts"]["data"]
    data = base64.b64decode(encodingData)  # Base64 decoding is required because the information of lts logs has been encoded.
    text = json.loads(data)
    # Output log group id
    print ("*** log group id:"+text["log_group_id"])
    # Output log topic id
    print ("*** log topic id:"+text["log_topic_id"])
    # Obtains lts log list: `logs` is the JSON text of the record array, not the array.
    logs = text["logs"]
    if isinstance(logs, str):
        logs = json.loads(logs)
    # Check whether the alarm log existed
    alarmLogs = checkAlarmLogs(logs)
    if len(alarmLogs) == 0:
        print ("*** no need to send alarm message")
        return "no need to send alarm message"

    # send smn message
    print ("***********send smn message **********")
    SMN_Topic = context.getUserData('SMN_Topic', '')
    if not SMN_Topic.strip():
        print ('*** No SMN topic. Please configure "SMN_Topic" environment variable')
        return "Environment variable configuration error"
    regionName = context.getUserData('RegionName', region)
    projectId = context.getProjectID()
    # The records as a JSON array (the tutorial stripped every backslash from it).
    body = {"message" :"Get warning message.The content of message is:"+json.dumps(alarmLogs), "subject":"TimeTrigger"}
    headers = {'X-Auth-Token': context.getToken(),  "accept": "application/json"}
    # The SMN endpoint comes from the runtime (trailwatch sets SMN_ENDPOINT) instead of the
    # hard-coded https://smn.<region>.otc.t-systems.com.
    url= os.environ["SMN_ENDPOINT"]+"/v2/"+projectId+"/notifications/topics/urn:smn:" + regionName + ":"+projectId+":"+SMN_Topic+"/publish"
    response = requests.post(url,headers=headers,data=json.dumps(body))
    if response.status_code != 200:
        print ("*** send SMN message failed. resp statusCode:"+str(response.status_code))
        return "send alarm message failed."
    print ("*** send SMN message to terminal successfully")

    print ("***********strore log file to obs bucket **********")
    obs_address = context.getUserData('obs_address', '')
    storeBucket = context.getUserData('obs_store_bucket', '')
    storeObjName = context.getUserData('obs_store_objName', '')
    if not obs_address.strip() or not storeBucket.strip() or not storeObjName.strip():
        print ('*** No obs environment variable. Please configure obs environment variable')
        return "Environment variable configuration error"

    # The object store's own S3 credentials, from the encrypted user data: the agency's
    # temporary AK/SK (context.getAccessKey()/getSecretKey()) are valid against trailwatch's
    # API only, not against an external object store.
    ak = context.getUserData('obs_access_key_id', '')
    sk = context.getUserData('obs_secret_access_key', '')
    if not ak.strip() or not sk.strip():
        print ('*** No obs credentials. Please configure "obs_access_key_id" and "obs_secret_access_key" encrypted variables')
        return "accessKey or secretKey error"

    print ("*** obs_address: " + obs_address)
    print ("*** store bucket: " + storeBucket)
    print ("*** store objName: " + storeObjName)

    # download the store object from the bucket
    # if the store object does not exist, it is created.
    status, content = GetObject(obs_address, storeBucket, storeObjName, ak, sk)
    if status == 404:
        print ("*** store object not found. Create a new OBS object:"+storeObjName)
    elif status != 200:
        # Anything else (denied, store down): appending to nothing would overwrite the object.
        print ("*** get store object failed. resp statusCode:"+str(status))
        raise RuntimeError("get store object failed: status " + str(status))

    content = log_store(content, alarmLogs)

    # upload the object to the bucket
    PostObject(obs_address, storeBucket, storeObjName, ak, sk, content)
    return 'log store success'

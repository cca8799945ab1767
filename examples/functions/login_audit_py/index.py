import json
import base64
import sys
import os
import ipaddress
import requests


# The tutorial's `ip.find(source_ip) < 0` was a substring test that alarmed when the address WAS
# listed. `IP` is an allowlist: exact addresses and CIDR ranges (IPv4 and IPv6), separated by
# commas, semicolons or whitespace; IPv4-mapped IPv6 addresses count as their IPv4 form.
def ip_allowed(source_ip, allowlist):
    try:
        addr = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for entry in allowlist.replace(",", " ").replace(";", " ").split():
        try:
            if addr in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def handler(event, context):
    text = json.dumps(event["cts"])
    ctsmsg = json.loads(text)
    
    #Resource operator IP
    source_ip = ctsmsg["source_ip"]
    #trace_name
    action = ctsmsg["trace_name"]
    
    SMN_Topic = context.getUserData('SMN_Topic')
    regionName = context.getUserData('RegionName')
    ip = context.getUserData('IP')
    projectId = context.getProjectID()
    
    # Exact match: the tutorial's `("login" or "logout")` is just "login", a substring test.
    if (action not in ("login", "logout")):
    	return "action is fail"
    
    if ip_allowed(source_ip, ip):
        return "reasonable " + action
    
    logInfo = "  IP:"+source_ip + ",  Action:"+action

    body = {"message" :"Illegal operation["+logInfo+"]", "subject":"CTSTrigger"}
    headers = {'X-Auth-Token': context.getToken(),  "accept": "application/json"}
    # The SMN endpoint comes from the runtime (trailwatch sets SMN_ENDPOINT) instead of the
    # hard-coded https://smn.<region>.otc.t-systems.com.
    url= os.environ["SMN_ENDPOINT"]+"/v2/"+projectId+"/notifications/topics/urn:smn:"+regionName+":"+projectId+":"+SMN_Topic+"/publish"

	
    response = requests.post(url,headers=headers,data=json.dumps(body))
    if response.status_code != 200:
        print (response.status_code)
        return "send alarm message failed."


    return 'send email success'
